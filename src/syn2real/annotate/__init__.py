"""The annotator: a web page and JSON API for answering a request folder's labelling requests by hand."""

from syn2real.annotate.server import create_app, serve

__all__ = ["create_app", "serve"]
