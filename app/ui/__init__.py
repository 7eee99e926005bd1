"""The web dashboard at `/ui`: server-rendered pages over the job service."""
