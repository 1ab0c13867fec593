"""Alert policy: findings -> alert episodes with stable ids."""
