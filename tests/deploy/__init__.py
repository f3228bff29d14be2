"""Tests of the deployment files: the Dockerfiles and the Kubernetes manifests."""
