"""Everything that touches Ultralytics' internals: the patches, the YAML rows' checks and channel inference, and the
version workarounds."""
