"""A Prefect server (or Prefect Cloud) as flowdeck's registry: the HTTP client and the registry over it."""
