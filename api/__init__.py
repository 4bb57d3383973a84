"""Serves: the FastAPI app, its routers, schemas, dependencies and the search page."""
