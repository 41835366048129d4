"""predwatch's logging side: what services import to log predictions as ECS-shaped JSON lines."""
