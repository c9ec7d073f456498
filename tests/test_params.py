"""Parameter validation: every bad value stops at once, naming the parameter and what is allowed."""
import pytest

from aptutils.core.errors import ParameterError
from aptutils.core.params import (
    KNOB_BY_NAME,
    PROFILE_NAMES,
    PROFILES,
    configure,
    resolve,
)
from aptutils.core.profiles import DERIVED, PAPER
from aptutils.notebooks import CHAPTER_GROUPS, parameters_source


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
    ({"test_extension": -1}, "test_extension=-1", ">= 0"),
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


def test_each_profile_states_only_what_differs_from_the_profile_it_derives_from():
    assert set(PAPER) == set(KNOB_BY_NAME) - {"profile"}
    assert set(DERIVED) | {"paper"} == set(PROFILE_NAMES)
    for name, (parent, changes) in DERIVED.items():
        assert set(changes) <= set(PAPER), name
        restated = [k for k, v in changes.items()
                    if v == PROFILES[parent][k] and type(v) is type(PROFILES[parent][k])]
        assert not restated, f"{name} restates {parent}'s {restated}"


@pytest.mark.parametrize("profile", PROFILE_NAMES)
def test_every_knob_has_a_value_in_every_profile(profile):
    values = resolve({"profile": profile}).values
    assert list(values) == list(KNOB_BY_NAME)
    assert values["pretrain"] == "published"


def test_pretrain_knob_allows_published_or_train():
    assert resolve({"pretrain": "train"}).pretrain == "train"
    with pytest.raises(ParameterError, match="pretrain='cache': allowed values are 'published', 'train'"):
        resolve({"pretrain": "cache"})


PARAMETERS_CELL = parameters_source(CHAPTER_GROUPS["02_apt"])
SETUP_CELL = "import math\nsettings = configure(globals())\ncounts = {'trained': []}\nws = 64\n"


def kernel(*cells: str) -> dict:
    """A namespace as a Jupyter kernel leaves it after running `cells`, its history in `In`."""
    namespace = {"In": [""], "configure": configure}
    for source in cells:
        namespace["In"].append(source)
        exec(source, namespace)
    return namespace


def injected(**parameters) -> str:
    from papermill.translators import translate_parameters

    return translate_parameters("python3", "python", parameters, "Parameters")


def test_configure_reruns_in_a_live_kernel():
    namespace = kernel(PARAMETERS_CELL, injected(profile="smoke"), SETUP_CELL, SETUP_CELL)
    assert namespace["settings"].profile == "smoke"
    assert configure(namespace).values == namespace["settings"].values


def test_configure_stops_on_a_misspelt_injected_parameter():
    with pytest.raises(ParameterError) as error:
        kernel(PARAMETERS_CELL, injected(profile="smoke", hiden_size=64), SETUP_CELL)
    message = str(error.value)
    assert message.startswith("unknown parameter 'hiden_size': did you mean 'hidden_size'?")
    assert "\n" not in message


def test_injected_values_win_over_the_parameters_cell():
    edited = PARAMETERS_CELL.replace("hidden_size: int = None", "hidden_size: int = 64")
    edited = edited.replace("seed: int = None", "seed: int = 7")
    namespace = kernel(edited, injected(profile="smoke", hidden_size=32, ws_list="64,256"), SETUP_CELL)
    settings = namespace["settings"]
    assert (settings.profile, settings.hidden_size, settings.ws_list, settings.seed) == ("smoke", 32, (64, 256), 7)
    assert settings.vocab_size == PROFILES["smoke"]["vocab_size"]


def test_an_import_that_shadows_a_parameter_stops_with_one_line():
    """A set-up cell that imports a function named like a knob would silently drop the -p value."""
    import math

    parameters = "# Parameters (papermill -p NAME VALUE)\nprofile: str = 'smoke'\nseed: int = None\n"
    namespace = {"In": ["", parameters], "profile": "smoke", "seed": math.floor}
    with pytest.raises(ParameterError, match="seed is bound to .* shadows this parameter"):
        configure(namespace)
