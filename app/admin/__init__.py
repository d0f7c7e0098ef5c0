"""The support console: staff find any workspace's Polar connection, see what happened, fix it,
and every action they take is audited."""
