"""Checks of a release's destination, made before any training."""

import pytest

from privgan.cli.release import check_release_destination, release_paths


def test_a_new_destination_passes_and_missing_folders_are_fine(tmp_path):
    assert check_release_destination(tmp_path / "new" / "synthetic.csv", overwrite=False) == []


@pytest.mark.parametrize(
    "output, message",
    [
        ("synthetic.txt", "--output must end in .csv"),
        ("table.csv/x.csv", "cannot be created: '.*table.csv' is a file, not a folder"),
        ("folder.csv", "is a folder; give a file name inside it"),
    ],
)
def test_unwritable_destinations_are_refused(tmp_path, output, message):
    (tmp_path / "table.csv").write_text("a\n1\n")
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(ValueError, match=message):
        check_release_destination(tmp_path / output, overwrite=False)


def test_an_earlier_release_is_replaced_only_with_overwrite_and_the_second_budget_is_named(tmp_path):
    output = tmp_path / "synthetic.csv"
    for path in release_paths(output):  # CSV and statement
        path.write_text("earlier")
    with pytest.raises(ValueError, match=r"an earlier release is there \(synthetic.csv, synthetic.json\); pass "
                                         r"--overwrite.*second privacy budget"):
        check_release_destination(output, overwrite=False)
    assert check_release_destination(output, overwrite=True) == release_paths(output)


@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize("spelling", ["same", "dotted", "symlink", "hardlink"])
def test_an_input_is_never_written_over(tmp_path, spelling, overwrite):
    private = tmp_path / "private.csv"
    private.write_text("a\n1\n")
    output = {"same": private, "dotted": tmp_path / "." / "private.csv", "symlink": tmp_path / "link.csv",
              "hardlink": tmp_path / "hard.csv"}[spelling]
    if spelling == "symlink":
        output.symlink_to(private)
    elif spelling == "hardlink":
        output.hardlink_to(private)
    # Not "an earlier release": the private table, whatever --overwrite says.
    with pytest.raises(ValueError, match=r"--output '.*' is the file of --csv \('.*private.csv'\): the command never "
                                         r"writes over its input, with or without --overwrite"):
        check_release_destination(output, overwrite=overwrite, inputs={"--csv": private, "--schema": None})
    assert private.read_text() == "a\n1\n"


def test_the_statement_is_never_written_over_the_schema(tmp_path):
    schema = tmp_path / "table.json"
    schema.write_text("{}")
    with pytest.raises(ValueError, match=r"--output's statement '.*table.json' is the file of --schema"):
        check_release_destination(tmp_path / "table.csv", overwrite=True, inputs={"--schema": schema})


def test_a_folder_where_the_statement_goes_is_refused(tmp_path):
    (tmp_path / "synthetic.json").mkdir()
    with pytest.raises(ValueError, match="companion file '.*synthetic.json' is a folder"):
        check_release_destination(tmp_path / "synthetic.csv", overwrite=True)
