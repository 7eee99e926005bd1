"""The domain: states, records and the pure rules over them that the fire path, jobs,
reconcile, the executor and the store share. No I/O here: the store persists these values,
the services decide with them."""
