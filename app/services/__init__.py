"""Services: the logic between the edges (routes) and storage; built once in the lifespan."""
