"""Name resolution: the packaged YAMLs and '<stock>-cbam.yaml' for every model YAML that ships with Ultralytics."""
