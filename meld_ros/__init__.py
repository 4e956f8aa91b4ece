"""meld_ros: thin rclpy nodes over meld_core (cameras, arm, reset rig, success, agent, sim)."""
