"""The Docker Engine API served by ``rootlet system service``: a front end like the CLI, reaching
runtime/ only through the engine (``server.py`` listens, ``routes.py`` maps paths to handlers)."""
