"""Python functions of the hello app. The app file names this module; chainkit calls register()."""


def add_topic(topics: list[str], topic: str) -> list[str]:
    """The learner's recent topics, newest last, at most five, without repeats."""
    kept = [t for t in topics if t != topic]
    return (kept + [topic])[-5:]


def register(registry) -> None:
    registry.register_function("add_topic", add_topic)
