"""The tabular peers benchmark runs privgan's engines as a release would: secret Poisson sampling."""

import pytest
from absl import flags

from tests.privgan.tabular.tables import SCHEMA, make_table


@pytest.fixture
def parsed_flags():
    from benchmarks import tabular_peers  # noqa: F401  (defines the flags)

    was_parsed = flags.FLAGS.is_parsed()
    if not was_parsed:
        flags.FLAGS.mark_as_parsed()
    yield
    if not was_parsed:
        flags.FLAGS.unparse_flags()


def test_the_gan_runs_with_a_seed_but_secret_sampling(parsed_flags, monkeypatch):
    import privgan.tabular
    from benchmarks import tabular_peers

    made, original = [], privgan.tabular.TabularDPSynthesizer

    def tiny(schema, **kwargs):  # the benchmark's arguments, with a network and a run small enough for a test
        made.append(original(schema, d_steps=2, generator_hidden=(4,), discriminator_hidden=(4,), **kwargs))
        return made[-1]

    monkeypatch.setattr(privgan.tabular, "TabularDPSynthesizer", tiny)
    _, info = tabular_peers._privgan("privgan_gan", SCHEMA, make_table(40), 3.0, 0)
    assert info["epsilon_spent"] <= 3.0
    assert made[0].privacy_statement()["sampling_seeding"].startswith("secret")
