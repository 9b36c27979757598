"""The python sandbox's attribute walls: formatting on any object, and dunder names by string.

RestrictedPython refuses ``obj.__x__`` at compile time, but a name given as a *string* reaches
the runtime guards: ``getattr``/``hasattr``/``setattr``/``delattr``, and the format mini-language
(``'{0.__class__}'.format(x)`` walks attributes inside C code). Each case here ran (and each
escape worked) before the guards covered every object and every one of those builtins.
"""

from __future__ import annotations

import pytest

from llmos.kernel.syscall import Outcome, SyscallTable
from llmos.peripherals.python import Python


def run(code: str) -> Outcome:
    return SyscallTable([Python()]).dispatch("python.run", {"code": code})


FORMAT_WALKS = {
    "UserString.format": (
        "import collections\ncollections.UserString('{0.__class__.__mro__}').format(1)"
    ),
    "UserString.format_map": (
        "import collections\ncollections.UserString('{x.__class__}').format_map({'x': 1})"
    ),
    "format through getattr on a wrapper": (
        "import collections\ngetattr(collections.UserString('{0.__class__}'), 'format')(1)"
    ),
}


@pytest.mark.parametrize("name", sorted(FORMAT_WALKS))
def test_no_object_hands_out_a_format_method(name: str) -> None:
    out = run(FORMAT_WALKS[name])
    assert out.status == "fault", out.text
    assert "format" in out.text and "f-string" in out.text, out.text
    assert "class" not in out.text  # nothing was walked


DUNDER_WRITES = {
    "setattr __class__ on an instance": (
        "class A:\n    pass\nclass B:\n    pass\na = A()\nsetattr(a, '__class__', B)\n"
        "isinstance(a, B)"
    ),
    "setattr __format__ on a class": (
        "class A:\n    def f(self, spec):\n        return 'hooked'\n"
        "setattr(A, '__format__', A.f)\nformat(A(), '')"
    ),
    "setattr __exit__ hands a traceback to the program": (
        "class A:\n    def enter(self):\n        return self\n"
        "    def leave(self, kind, exc, tb):\n        print(repr(tb)[:12])\n        return True\n"
        "setattr(A, '__enter__', A.enter)\nsetattr(A, '__exit__', A.leave)\n"
        "with A():\n    1 / 0\n'done'"
    ),
    "setattr __getattr__ on a class": (
        "class A:\n    def g(self, name):\n        return name\n"
        "setattr(A, '__getattr__', A.g)\nA().anything"
    ),
    "setattr a private name": (
        "class A:\n    pass\nsetattr(A, '_guarded_writes', False)\n'set'"
    ),
    "delattr __module__ of a class": (
        "class A:\n    pass\ndelattr(A, '__module__')\n'deleted'"
    ),
    "setattr through a lying str subclass": (
        "class N(str):\n    def startswith(self, prefix):\n        return False\n"
        "class A:\n    def f(self, spec):\n        return 'hooked'\n"
        "setattr(A, N('__format__'), A.f)\nformat(A(), '')"
    ),
}


@pytest.mark.parametrize("name", sorted(DUNDER_WRITES))
def test_setattr_and_delattr_refuse_private_and_dunder_names(name: str) -> None:
    out = run(DUNDER_WRITES[name])
    assert out.status == "fault", out.text
    assert "not allowed in the sandbox" in out.text or "plain strings" in out.text, out.text
    assert "hooked" not in out.text and "traceback" not in out.text


DUNDER_READS = {
    "getattr": "getattr(1, '__class__')",
    "getattr with a default": "getattr(1, '__class__', None)",
    "hasattr": "hasattr(1, '__class__')",
    "getattr through a lying str subclass": (
        "class N(str):\n    def startswith(self, prefix):\n        return False\n"
        "getattr(1, N('__class__'))"
    ),
}


@pytest.mark.parametrize("name", sorted(DUNDER_READS))
def test_getattr_and_hasattr_refuse_dunder_strings(name: str) -> None:
    out = run(DUNDER_READS[name])
    assert out.status == "fault", out.text
    assert "not allowed in the sandbox" in out.text or "plain strings" in out.text, out.text


def test_ordinary_attribute_work_still_runs() -> None:
    code = (
        "import collections\nclass A:\n    pass\na = A()\nsetattr(a, 'x', 3)\n"
        "setattr(A, 'y', 4)\ndelattr(a, 'x')\n"
        "s = collections.UserString('ab')\n"
        "[hasattr(a, 'x'), getattr(a, 'y'), getattr(a, 'z', 0), s.upper().data, "
        "format(3.5, '>5'), f'{2:03d}', '%s-%d' % ('a', 1)]"
    )
    out = run(code)
    assert out.status == "ok", out.text
    assert out.text == "[False, 4, 0, 'AB', '  3.5', '002', 'a-1']"
