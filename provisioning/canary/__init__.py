"""The key canary: a known value encrypted with POLAR_TOKEN_ENCRYPTION_KEY, so every process can
check at start-up that its keys are this database's."""
