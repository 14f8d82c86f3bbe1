"""Pictures of what a model attends to: CBAM's own gates (attention maps) and Ultralytics' LayerCAM side by side."""
