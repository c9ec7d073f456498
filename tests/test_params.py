"""Parameter validation: every bad value stops at once, naming the parameter and what is allowed."""
import pytest

from aptutils.core.errors import ParameterError
from aptutils.core.params import PROFILES, configure, resolve


def test_profile_defaults_and_overrides():
    settings = resolve({"profile": "smoke", "hidden_size": 32, "vocab_size": None})
    assert settings.hidden_size == 32
    assert settings.vocab_size == PROFILES["smoke"]["vocab_size"]
    assert resolve({}).profile == "cpu"


@pytest.mark.parametrize("chosen, named, allowed", [
    ({"profile": "huge"}, "profile=", "'smoke', 'cpu', 'gpu', 'paper'"),
    ({"hidden_size": "wide"}, "hidden_size='wide'", "integer"),
    ({"hidden_size": 4}, "hidden_size=4", "[8, 8192]"),
    ({"learning_rate": 0}, "learning_rate=0", "(0.0, 1.0]"),
    ({"sample_mode": "all"}, "sample_mode='all'", "'first', 'chunks'"),
    ({"ws_list": "4000,2000"}, "ws_list='4000,2000'", "strictly increasing"),
    ({"num_heads": 3}, "num_heads=3", "must divide hidden_size=128"),
    ({"batch_size": True}, "batch_size=True", "integer"),
])
def test_bad_values_name_the_parameter_and_the_allowed_values(chosen, named, allowed):
    with pytest.raises(ParameterError) as error:
        resolve(chosen)
    message = str(error.value)
    assert named in message and allowed in message
    assert "\n" not in message


def test_unknown_name_suggests_the_closest_knob():
    with pytest.raises(ParameterError, match="unknown parameter 'hiden_size': did you mean 'hidden_size'"):
        configure({"profile": "smoke", "hiden_size": 64})


def test_configure_ignores_modules_and_ipython_names():
    import math

    settings = configure({"profile": "smoke", "math": math, "In": [], "_": None, "get_ipython": print})
    assert settings.profile == "smoke"


def test_ws_list_accepts_text_and_lists():
    assert resolve({"ws_list": "100, 200 400"}).ws_list == (100, 200, 400)
    assert resolve({"ws_list": [100, 200]}).ws_list == (100, 200)
    assert resolve({"ws_list": 4000}).ws_list == (4000,)


def test_mirror_without_data_root_says_how_to_set_it(monkeypatch):
    monkeypatch.delenv("APTBOOK_DATA", raising=False)
    with pytest.raises(ParameterError, match="set APTBOOK_DATA"):
        resolve({"corpus": "mirror"})


def test_error_renders_as_one_line_in_ipython():
    assert ParameterError("x=1: bad")._render_traceback_() == ["ParameterError: x=1: bad"]
