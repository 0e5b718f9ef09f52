"""The authoritative model registry: models, versions, datasets, and which version holds each stage."""
