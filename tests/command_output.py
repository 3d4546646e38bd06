"""What the keras-dbn command and the tuning script print, for the tests."""


def error_line(err, prog):
    """The one line of ``prog``'s error message in ``err``; no traceback."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith(f"{prog}: error: ")]
    assert len(lines) == 1, err
    return lines[0]
