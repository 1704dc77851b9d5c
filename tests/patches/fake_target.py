"""Objects the patch framework tests replace and restore (not inference: fast and explicit)."""


class Base:
    def inherited(self):
        return "base"


class Target(Base):
    def method(self):
        return "original"

    @staticmethod
    def static():
        return "static"

    @classmethod
    def klass(cls):
        return "class"


def function():
    return "function"
