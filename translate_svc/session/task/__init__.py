"""What a call asks for: the request checks and resolving, once for every door."""
