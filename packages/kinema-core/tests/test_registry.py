import pytest

from kinema.core import DuplicateNameError, UnknownNameError, get_plugins, get_registry, lookup
from plugin_dists import write_distribution

GOOD = """
from kinema.core import hookimpl

@hookimpl
def register_schedulers(register):
    register("toy-scheduler", "TOY", description="a test scheduler")
"""


def test_unknown_name_lists_the_available_names(plugin_path):
    write_distribution(plugin_path, "good-plugin", "good_plugin", GOOD)
    with pytest.raises(UnknownNameError) as err:
        lookup("scheduler", "no-such-scheduler")
    message = str(err.value)
    assert "no-such-scheduler" in message and "toy-scheduler" in message


def test_entry_point_plugin_registers_with_its_distribution(plugin_path):
    write_distribution(plugin_path, "good-plugin", "good_plugin", GOOD)
    entry = get_registry("scheduler").entry("toy-scheduler")
    assert entry.obj == "TOY"
    assert entry.distribution == "good-plugin"
    assert entry.info == {"description": "a test scheduler"}


def test_duplicate_name_error_names_both_distributions(plugin_path):
    write_distribution(plugin_path, "good-plugin", "good_plugin", GOOD)
    write_distribution(plugin_path, "copycat-plugin", "copycat_plugin", GOOD)
    with pytest.raises(DuplicateNameError) as err:
        get_registry("scheduler").names()
    assert "good-plugin" in str(err.value) and "copycat-plugin" in str(err.value)


def test_broken_plugin_is_reported_and_the_others_load(plugin_path):
    write_distribution(plugin_path, "good-plugin", "good_plugin", GOOD)
    write_distribution(plugin_path, "broken-plugin", "broken_plugin", "raise RuntimeError('boom at import')\n")
    with pytest.warns(UserWarning, match="broken-plugin"):
        names = get_registry("scheduler").names()
    assert "toy-scheduler" in names
    failures = [f for f in get_plugins().failures if f.distribution == "broken-plugin"]
    assert len(failures) == 1 and "boom at import" in failures[0].error
    assert "good-plugin" in {info.distribution for info in get_plugins().infos.values()}


def test_plugin_whose_register_hook_raises_is_reported(plugin_path):
    source = (
        "from kinema.core import hookimpl\n\n"
        "@hookimpl\ndef register_schedulers(register):\n    raise ValueError()\n"
    )
    write_distribution(plugin_path, "raising-plugin", "raising_plugin", source)
    write_distribution(plugin_path, "good-plugin", "good_plugin", GOOD)
    with pytest.warns(UserWarning, match="raising-plugin"):
        assert "toy-scheduler" in get_registry("scheduler").names()


def test_kinema_load_plugins_restricts_third_party_distributions(plugin_path, monkeypatch):
    write_distribution(plugin_path, "good-plugin", "good_plugin", GOOD)
    monkeypatch.setenv("KINEMA_LOAD_PLUGINS", "some-other-plugin")
    assert "toy-scheduler" not in get_registry("scheduler").names()
    names = {info.distribution for info in get_plugins().infos.values()}
    assert "kinema-core" in names  # kinema's own distributions always load
    assert "good-plugin" not in names


def test_kinema_load_plugins_accepts_unnormalised_names(plugin_path, monkeypatch):
    write_distribution(plugin_path, "good-plugin", "good_plugin", GOOD)
    monkeypatch.setenv("KINEMA_LOAD_PLUGINS", "Good_Plugin")
    assert "toy-scheduler" in get_registry("scheduler").names()


def test_unknown_kind_is_an_error():
    from kinema.core import KinemaError

    with pytest.raises(KinemaError, match="kinds"):
        get_registry("no-such-kind")
