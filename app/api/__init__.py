"""HTTP surface: thin routers that parse, call one service function, and shape the answer."""
