"""The web service: the FastAPI app, the job runner and the network checks."""
