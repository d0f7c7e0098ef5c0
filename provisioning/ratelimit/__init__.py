"""One shared budget for Polar's rate limit: every process, on every machine, asks it before every
call to Polar (see :mod:`provisioning.ratelimit.budget`)."""
