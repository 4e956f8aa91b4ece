"""Device drivers (cameras, reset-rig serial client) behind one small connect/disconnect interface."""
