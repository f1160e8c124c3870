"""Image volumes: the in-memory grid and the chunked Zarr stores."""
