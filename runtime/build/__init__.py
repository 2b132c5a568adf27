"""``rootlet build``: an image from a Dockerfile (Containerfile) and a context, rootless and cached.

``dockerfile`` parses (directives, continuations, heredocs, flags, JSON forms), ``expand`` does
docker's variable substitution and word rules, ``ignore`` reads ``.dockerignore``, ``context``
resolves COPY sources inside the context, ``copystep`` and ``runstep`` make a step's layer,
``config`` applies the instructions that only change the image config, ``builder`` runs the
stages with the step cache.
"""
