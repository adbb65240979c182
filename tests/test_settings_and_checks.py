"""The storages handler, PRISM_STORAGE and the system checks."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from prism_storage import FileStorageBackend, storages
from prism_storage.exceptions import ConfigurationError, InvalidOptionError, InvalidStoreAliasError


def ids(messages):
    return sorted(m.id for m in messages if m.id and m.id.startswith("prism_storage."))


def prism_checks():
    return [m for m in run_checks(tags=["prism_storage"]) if m.id.startswith("prism_storage.")]


def test_one_instance_per_alias_created_lazily(tmp_path, settings):
    settings.PRISM_STORAGE = {
        "default": {"BACKEND": "file", "OPTIONS": {"data_dir": str(tmp_path / "a")}},
        "other": {
            "BACKEND": "prism_storage.backends.file.FileStorageBackend",
            "OPTIONS": {"data_dir": str(tmp_path / "b")},
        },
    }
    assert storages.initialized() == []
    first = storages["default"]
    assert isinstance(first, FileStorageBackend)
    assert storages["default"] is first
    assert storages["other"] is not first
    assert first.alias == "default"
    assert sorted(storages) == ["default", "other"]
    assert not (tmp_path / "a").exists(), "creating a store must do no I/O"


def test_instances_are_shared_across_threads(tmp_path, settings):
    import threading

    settings.PRISM_STORAGE = {
        "default": {"BACKEND": "file", "OPTIONS": {"data_dir": str(tmp_path)}}
    }
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(storages["default"])) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(s) for s in seen}) == 1


def test_override_settings_resets_the_handler(tmp_path):
    with override_settings(
        PRISM_STORAGE={"default": {"BACKEND": "file", "OPTIONS": {"data_dir": str(tmp_path)}}}
    ):
        assert isinstance(storages["default"], FileStorageBackend)
    assert storages["default"].backend_name == "orm"


def test_unknown_alias(settings):
    settings.PRISM_STORAGE = {"default": {"BACKEND": "orm"}, "cache": {"BACKEND": "orm"}}
    with pytest.raises(InvalidStoreAliasError, match="configured: cache, default"):
        storages["nope"]


def test_unknown_option_is_rejected_not_ignored(tmp_path, settings):
    settings.PRISM_STORAGE = {"default": {"BACKEND": "file", "OPTIONS": {"datadir": str(tmp_path)}}}
    with pytest.raises(InvalidOptionError, match="datadir"):
        storages["default"]


def test_unset_setting_defaults_to_one_orm_store(settings):
    del settings.PRISM_STORAGE
    assert storages["default"].backend_name == "orm"
    assert prism_checks() == []


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ([("default", {})], ["prism_storage.E001"]),
        ({"cache": {"BACKEND": "orm"}}, ["prism_storage.E002"]),
        ({"default": "orm"}, ["prism_storage.E003"]),
        ({"default": {"OPTIONS": {}}}, ["prism_storage.E003"]),
        ({"default": {"BACKEND": "orm", "OPTION": {}}}, ["prism_storage.E003"]),
        ({"default": {"BACKEND": "orm", "OPTIONS": []}}, ["prism_storage.E003"]),
        ({"default": {"BACKEND": "mongo"}}, ["prism_storage.E004"]),
        ({"default": {"BACKEND": "orm", "OPTIONS": {"namespce": "x"}}}, ["prism_storage.E006"]),
        ({"default": {"BACKEND": "orm", "OPTIONS": {"ttl": -5}}}, ["prism_storage.E007"]),
        # touch_on_read slides to the default ttl: without one it is a configuration error.
        (
            {"default": {"BACKEND": "orm", "OPTIONS": {"touch_on_read": True}}},
            ["prism_storage.E007"],
        ),
        (
            {"default": {"BACKEND": "memory", "OPTIONS": {"ttl": 60, "touch_on_read": "yes"}}},
            ["prism_storage.E007"],
        ),
        ({"default": {"BACKEND": "memory", "OPTIONS": {"ttl": 60, "touch_on_read": True}}}, []),
        ({"default": {"BACKEND": "orm", "OPTIONS": {"using": "nosuchdb"}}}, ["prism_storage.E009"]),
        ({"default": {"BACKEND": "orm", "OPTIONS": {"alias": "other"}}}, ["prism_storage.E011"]),
        (
            {
                "default": {
                    "BACKEND": "tests.test_registry.ThirdPartyStore",
                    "OPTIONS": {"alias": "x"},
                }
            },
            ["prism_storage.E011"],
        ),
        (
            {"default": {"BACKEND": "file", "OPTIONS": {"data_dir": "relative/dir"}}},
            ["prism_storage.W001"],
        ),
        (
            {
                "default": {
                    "BACKEND": "file",
                    "OPTIONS": {"data_dir": "/nonexistent/x", "create_if_missing": False},
                }
            },
            ["prism_storage.E008"],
        ),
        ({"default": {"BACKEND": "file", "OPTIONS": {"data_dir": 42}}}, ["prism_storage.E007"]),
    ],
)
def test_checks_catch_configuration_mistakes(settings, setting, expected):
    settings.PRISM_STORAGE = setting
    messages = prism_checks()
    assert ids(messages) == expected
    for message in messages:
        assert message.msg


def test_unwritable_data_dir_is_an_error(tmp_path, settings):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    settings.PRISM_STORAGE = {"default": {"BACKEND": "file", "OPTIONS": {"data_dir": str(blocker)}}}
    assert ids(prism_checks()) == ["prism_storage.E008"]


def test_a_valid_setting_has_no_messages(tmp_path, settings):
    settings.PRISM_STORAGE = {
        "default": {"BACKEND": "orm"},
        "files": {"BACKEND": "file", "OPTIONS": {"data_dir": str(tmp_path)}},
    }
    assert prism_checks() == []


def test_manage_py_check_fails_on_errors(settings):
    settings.PRISM_STORAGE = {"default": {"BACKEND": "mongo"}}
    with pytest.raises(SystemCheckError, match=r"prism_storage\.E004"):
        call_command("check", "--tag", "prism_storage")


def test_bad_setting_raises_configuration_error_on_use(settings):
    settings.PRISM_STORAGE = ["not", "a", "dict"]
    with pytest.raises(ConfigurationError):
        storages["default"]


@pytest.mark.parametrize("policy", ["no.such.module.policy", 42])
def test_bad_access_policy_is_reported(settings, policy):
    settings.PRISM_STORAGE_ACCESS = policy
    assert ids(prism_checks()) == ["prism_storage.E010"]


def test_access_policy_path_is_accepted(settings):
    settings.PRISM_STORAGE_ACCESS = "tests.test_settings_and_checks.allow_all"
    assert prism_checks() == []


def allow_all(user, alias, operation):
    return True


def test_options_may_not_name_the_alias(settings):
    settings.PRISM_STORAGE = {"default": {"BACKEND": "orm", "OPTIONS": {"alias": "other"}}}
    with pytest.raises(ConfigurationError, match="may not set 'alias'"):
        storages["default"]


def test_a_protocol_only_backend_passes_the_checks(settings):
    settings.PRISM_STORAGE = {
        "default": {"BACKEND": "tests.test_registry.ThirdPartyStore", "OPTIONS": {"bucket": "x"}}
    }
    assert prism_checks() == []


def test_a_subclass_without_an_alias_parameter_still_learns_its_alias(settings):
    settings.PRISM_STORAGE = {
        "default": {"BACKEND": "orm"},
        "old": {
            "BACKEND": "tests.support.minimal_backend.MinimalBackend",
            "OPTIONS": {"name": "old-style"},
        },
    }
    store = storages["old"]
    assert store.alias == "old" and store.name == "old-style"
    assert prism_checks() == []
