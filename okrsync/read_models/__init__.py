"""What okrsync reports about its store, as one set of pydantic models.

The JSON API answers with them (:mod:`okrsync.api` adds only its pages, errors and request
bodies) and every ``okrsync … --json`` prints them, so a key result, objective, measurement, run
or connection has the same fields, in the same order and the same formats, wherever it is read.
Nothing here imports the web server: the CLI loads these without FastAPI or Starlette.
"""
