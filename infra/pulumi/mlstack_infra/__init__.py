"""mlstack's infrastructure program for Pulumi: a GPU Kubernetes cluster and the mlstack
services on it, on AWS, GCP, Azure or an existing cluster, from one typed spec."""
