import pytest

from usbench.errors import ConfigError
from usbench.features import FEATURES
from usbench.registry import Registry


def test_unknown_name_suggests_the_closest():
    with pytest.raises(ConfigError) as err:
        FEATURES.check("mfcc-stat")
    assert str(err.value) == (
        "Unknown feature set 'mfcc-stat'. Did you mean 'mfcc-stats'? "
        "Available: birdnet, logmel, mfcc-mean, mfcc-stats, stft, stft-mag."
    )


def test_unknown_name_without_close_match_lists_all():
    reg = Registry("model", {"mlp": "x:y", "cnn": "x:z"})
    with pytest.raises(ConfigError, match=r"^Unknown model 'zzzz'\. Available: cnn, mlp\.$"):
        reg.check("zzzz")


def test_entries_resolve_lazily_and_once():
    reg = Registry("thing", {"path-join": "os.path:join"})
    import os.path

    assert reg.get("path-join") is os.path.join
    assert reg.names() == ["path-join"] and "path-join" in reg


def test_feature_names_become_safe_file_names():
    from usbench.features import short_label, slug

    assert slug("birdnet+mfcc-stats") == "birdnet+mfcc-stats"
    a, b = slug("encoder:/x/cards/a.toml"), slug("encoder:/y/cards/a.toml")
    assert a != b and a.startswith("encoder-a-")
    assert slug("hear:mod@/w/x.pt").startswith("hear-mod-")
    assert short_label("encoder:/x/cards/a.toml+hear:m@/w.pt+mfcc-stats") == (
        "encoder:a+hear:m+mfcc-stats")
    assert all(c.isalnum() or c in "._+-" for c in a + b + slug("hear:m@/w/ é.pt"))
