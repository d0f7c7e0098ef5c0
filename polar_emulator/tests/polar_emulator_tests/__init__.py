"""The emulator's own tests: a package named apart from the platform's ``tests``, so the two never collide."""
