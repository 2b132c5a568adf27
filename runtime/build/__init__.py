"""``rootlet build``: an image from a Dockerfile (Containerfile) and a context, rootless and cached.

``dockerfile`` parses (directives, continuations, heredocs, flags, JSON forms), ``expand`` does
docker's variable substitution and word rules, ``ignore`` reads ``.dockerignore``, ``context``
resolves COPY sources inside the context, ``plan`` checks what the build starts from (the file,
names, ARGs, the stages the target needs), ``config`` applies the instructions that only change
the image config, ``runstep`` runs RUN (its mounts, its container), ``addfiles`` drives COPY, ADD
and WORKDIR and ``copystep`` is their copy inside the user namespace, ``state`` is what passes
from step to step, and ``builder`` runs the stages with the step cache.
"""
