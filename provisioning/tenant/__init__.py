"""What a tenant's own deployment reads of its workspace's connection through the tenant API: the
plans as provisioned in its Polar organization, and the environment variables its deploy needs."""
