"""``--format`` Go templates: the text/template subset podman users write, podman's functions,
its ``table`` layout (header row, tabwriter alignment) and the errors a broken template gives."""

from __future__ import annotations

import re
from typing import Any

import pytest

from rootlet.cli import template
from rootlet.cli.render import print_rows
from rootlet.cli.tabwrite import tabwrite
from rootlet.cli.template import format_kind, header_text, render_rows, render_template
from rootlet.registry.errors import UsageError

#: An inspect-like document, the shape the common CI lines are written against.
DOC: dict[str, Any] = {
    "Id": "sha256:0123456789ab", "ID": "0123456789ab", "Name": "web", "Names": ["web", "frontend"],
    "Repository": "docker.io/library/alpine", "Tag": "3.20", "CreatedAt": "2024-05-01",
    "State": {"Status": "running", "Pid": 4242, "Running": True, "Health": None, "ExitCode": 0},
    "Config": {"Env": ["PATH=/usr/bin", "TERM=xterm"], "Labels": {}},
    "Labels": {"com.example.key": "blue", "a": "1"},
    "Mounts": [{"Destination": "/data", "Source": "/srv"}, {"Destination": "/cache", "Source": "/tmp"}],
    "Size": 1.5, "Count": 3, "Ratio": 1e6, "Empty": [], "Unicode": "héllo",
}


def render(text: str, doc: Any = DOC) -> str:
    return render_template(text, doc)


def error_of(text: str, doc: Any = DOC) -> UsageError:
    with pytest.raises(UsageError) as info:
        render_template(text, doc)
    assert info.value.message.startswith("template: ") and "\n" not in info.value.message
    return info.value


# --- the lines CI scripts actually write ------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("{{.Repository}}:{{.Tag}} {{.ID}}", "docker.io/library/alpine:3.20 0123456789ab"),
    ("{{range .Mounts}}{{.Destination}} {{end}}", "/data /cache "),
    ('{{index .Labels "com.example.key"}}', "blue"),
    ("{{json .Config.Env}}", '["PATH=/usr/bin","TERM=xterm"]'),
    ('{{if eq .State.Status "running"}}up{{else}}down{{end}}', "up"),
    ('{{printf "%-10s|" .Name}}', "web       |"),
    ('{{join .Names ","}}', "web,frontend"),
    ("{{.State.Pid}}", "4242"),
])
def test_common_ci_format_lines_print_what_podman_prints(text: str, expected: str) -> None:
    assert render(text) == expected


# --- text, actions, trimming, comments --------------------------------------------------------------

def test_text_without_actions_is_printed_as_is() -> None:
    assert render("plain text") == "plain text"


def test_trim_markers_remove_the_whitespace_beside_the_action() -> None:
    assert render("a  \n {{- .Name -}} \n  b") == "awebb"
    assert render("{{.Name}}\n  {{- .Tag}}") == "web3.20"


def test_a_dash_without_a_space_is_a_negative_number_not_a_trim_marker() -> None:
    assert render("x {{-3}}") == "x -3"
    assert render("x {{- 3}}") == "x3"


def test_comments_print_nothing_and_may_trim() -> None:
    assert render("a{{/* a comment {{ with braces */}}b") == "ab"
    assert render("a {{- /* note */ -}} b") == "ab"


def test_typed_backslash_t_and_n_in_the_text_become_tab_and_newline() -> None:
    assert render(r"{{.Name}}\t{{.Tag}}\n") == "web\t3.20\n"


def test_go_string_escapes_and_raw_strings_in_actions() -> None:
    assert render(r'{{"a\tb\x41\u00e9\"q\""}}') == 'a\tbAé"q"'
    assert render(r"{{`no \t escape`}}") == r"no \t escape"


def test_number_literals() -> None:
    assert render("{{0x1F}} {{1_000}} {{1.5}} {{-2}} {{1e3}}") == "31 1000 1.5 -2 1000"


# --- fields, variables, dot ---------------------------------------------------------------------------

def test_field_chains_read_nested_map_keys() -> None:
    assert render("{{.State.Status}} {{.Config.Env}}") == "running [PATH=/usr/bin TERM=xterm]"


def test_dot_is_the_current_value_and_dollar_the_root() -> None:
    assert render("{{range .Mounts}}{{$.Name}}:{{.Source}} {{end}}") == "web:/srv web:/tmp "
    assert render("{{.}}", "just a string") == "just a string"


def test_variables_declare_assign_and_print_nothing_when_declared() -> None:
    assert render("{{$n := .Name}}[{{$n}}]") == "[web]"
    assert render("{{$x := 1}}{{range .Names}}{{$x = .}}{{end}}{{$x}}") == "frontend"


def test_a_variable_ends_at_the_end_of_its_block() -> None:
    err = error_of("{{range .Names}}{{$v := .}}{{end}}{{$v}}")
    assert "undefined variable: $v" in err.message


def test_variable_field_chains_and_parenthesised_pipelines() -> None:
    assert render("{{with $s := .State}}{{$s.Pid}}{{end}}") == "4242"
    assert render("{{(index .Mounts 1).Destination}}") == "/cache"


def test_pipelines_pass_the_value_as_the_last_argument() -> None:
    assert render('{{.Name | upper | printf "%s!"}}') == "WEB!"
    assert render('{{len .Names | printf "%d names"}}') == "2 names"


# --- control structures ----------------------------------------------------------------------------------

@pytest.mark.parametrize("value, truth", [
    (False, "F"), (0, "F"), (0.0, "F"), (None, "F"), ("", "F"), ([], "F"), ({}, "F"),
    (True, "T"), (1, "T"), (-1.5, "T"), ("0", "T"), ([0], "T"), ({"a": 0}, "T"),
])
def test_truthiness_is_gos(value: Any, truth: str) -> None:
    assert render("{{if .V}}T{{else}}F{{end}}", {"V": value}) == truth


def test_else_if_chains_share_one_end() -> None:
    text = '{{if eq .S "a"}}A{{else if eq .S "b"}}B{{else if eq .S "c"}}C{{else}}?{{end}}'
    assert [render(text, {"S": s}) for s in "abcd"] == ["A", "B", "C", "?"]


def test_range_over_lists_with_index_and_else_for_empty() -> None:
    assert render("{{range $i, $v := .Names}}{{$i}}={{$v}};{{end}}") == "0=web;1=frontend;"
    assert render("{{range $m := .Mounts}}{{$m.Source}}{{end}}") == "/srv/tmp"
    assert render("{{range .Empty}}x{{else}}none{{end}}") == "none"
    assert render("{{range .State.Health}}x{{else}}nil is empty{{end}}") == "nil is empty"


def test_range_over_a_map_goes_in_sorted_key_order() -> None:
    doc = {"L": {"zeta": "3", "alpha": "1", "mid": "2"}}
    assert render("{{range $k, $v := .L}}{{$k}}={{$v}} {{end}}", doc) == "alpha=1 mid=2 zeta=3 "
    assert render("{{range .L}}{{.}}{{end}}", doc) == "123"


def test_range_over_an_int_counts_from_zero() -> None:
    assert render("{{range .Count}}{{.}}{{end}}") == "012"


def test_break_and_continue_leave_or_skip_the_innermost_range() -> None:
    assert render('{{range .Names}}{{if eq . "frontend"}}{{break}}{{end}}{{.}};{{end}}') == "web;"
    assert render('{{range .Names}}{{if eq . "web"}}{{continue}}{{end}}{{.}};{{end}}') == "frontend;"


def test_with_sets_dot_and_falls_to_else_when_empty() -> None:
    assert render("{{with .State}}{{.Status}}{{end}}") == "running"
    assert render("{{with .State.Health}}{{.}}{{else}}no health{{end}}") == "no health"
    assert render("{{with .Empty}}x{{else with .Name}}{{.}}{{end}}") == "web"


# --- how values print ------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, printed", [
    ("text", "text"), (42, "42"), (-7, "-7"), (True, "true"), (False, "false"), (None, "<nil>"),
    (1.5, "1.5"), (2.0, "2"), (1e6, "1e+06"), (100000.0, "100000"), (1234567.0, "1.234567e+06"),
    (0.0001, "0.0001"), (1e-05, "1e-05"), (-0.25, "-0.25"), (0.0, "0"),
    (["a", "b", 3], "[a b 3]"), ([], "[]"), ({"b": 2, "a": 1}, "map[a:1 b:2]"), ({}, "map[]"),
    ([{"k": None}, [True]], "[map[k:<nil>] [true]]"),
])
def test_values_print_like_gos_fmt_v(value: Any, printed: str) -> None:
    assert render("{{.V}}", {"V": value}) == printed


def test_a_null_field_that_exists_prints_nil() -> None:
    assert render("{{.State.Health}}") == "<nil>"


# --- functions -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ('{{eq .State.Status "exited" "running"}}', "true"),
    ('{{ne .Name "web"}}', "false"),
    ("{{lt 1 2}} {{le 2 2}} {{gt 1.5 2}} {{ge 3 2.5}}", "true true false true"),
    ('{{lt "a" "b"}}', "true"),
    ("{{eq .State.Health nil}} {{eq .Name nil}}", "true false"),
    ("{{not .Empty}} {{not .Name}}", "true false"),
    ('{{and 1 0 "x"}} {{and 1 "x"}} {{or 0 "" "y"}} {{or 0 ""}}', '0 x y '),
    ("{{len .Names}} {{len .Name}} {{len .Labels}}", "2 3 2"),
    ("{{index .Names 1}} {{index .Mounts 0 | len}}", "frontend 2"),
    ('{{index .Labels "missing"}}|{{index .Config.Labels "x"}}|', "||"),
    ("{{slice .Name 1}} {{slice .Name 0 2}} {{slice .Names 1 2}}", "eb we [frontend]"),
    ('{{print "a" 1 2 "b"}}', "a1 2b"),
    ('{{println "a" 1}}', "a 1\n"),
    ("{{json .}}", None),
    ('{{json .Name}} {{json .State.Health}} {{json .Unicode}}', '"web" null "héllo"'),
    ('{{lower "ABC"}} {{upper .Name}} {{title "hello wide-world"}}', "abc WEB Hello Wide-World"),
    ('{{split "a,b,c" ","}} {{len (split "abc" "")}}', "[a b c] 3"),
    ('{{truncate .Name 2}}|{{truncate .Name 10}}', "we|web"),
    ('[{{pad .Name 2 1}}][{{pad "" 2 1}}]', "[  web ][]"),
])
def test_go_and_podman_functions(text: str, expected: str | None) -> None:
    if expected is None:  # json of a document keeps its key order, compact, without a newline
        doc = {"b": [1, 2], "a": {"x": None}, "u": "é"}
        assert render(text, doc) == '{"b":[1,2],"a":{"x":null},"u":"é"}'
    else:
        assert render(text) == expected


def test_and_or_stop_at_the_deciding_argument() -> None:
    assert render("{{and false .NoSuchField}}") == "false"
    assert render("{{or .Name .NoSuchField}}") == "web"


@pytest.mark.parametrize("text, expected", [
    ('{{printf "%s|%5s|%-5s|%.2s" "abc" "ab" "ab" "abc"}}', "abc|   ab|ab   |ab"),
    ('{{printf "%d|%5d|%-5d|%05d|%+d" 42 42 42 42 42}}', "42|   42|42   |00042|+42"),
    ('{{printf "%x|%X|%o|%b|%#x" 255 255 8 5 255}}', "ff|FF|10|101|0xff"),
    ('{{printf "%f|%.2f|%8.3f|%e" 3.14159 3.14159 3.14159 1e6}}', "3.141590|3.14|   3.142|1.000000e+06"),
    ('{{printf "%g|%g|%.3g" 1.5 1e6 3.14159}}', "1.5|1e+06|3.14"),
    ('{{printf "%v|%v|%v|%v" .Names .Labels .Count .State.Health}}', "[web frontend]|map[a:1 com.example.key:blue]|3|<nil>"),
    ('{{printf "%t|%q|%x" true "a\\"b" "hi"}}', 'true|"a\\"b"|6869'),
    ('{{printf "100%%"}}', "100%"),
    ('{{printf "%d"}}', "%!d(MISSING)"),
    ('{{printf "%d" 1 "x"}}', "1%!(EXTRA string=x)"),
    ('{{printf "%d" "x"}}', "%!d(string=x)"),
    ('{{printf "%d" 2.0}}', "2"),
])
def test_printf_maps_gos_verbs(text: str, expected: str) -> None:
    assert render(text) == expected


# --- errors ------------------------------------------------------------------------------------------------------

def test_an_unknown_field_is_an_error_naming_it() -> None:
    err = error_of("{{.NoSuchField}}")
    assert "can't evaluate field NoSuchField" in err.message
    assert err.hint and "--format json" in err.hint


def test_an_unknown_nested_field_names_the_whole_chain_and_the_type() -> None:
    assert "<.Config.Nope>: can't evaluate field Nope" in error_of("{{.Config.Nope}}").message
    assert "can't evaluate field X in type string" in error_of("{{.Name.X}}").message
    assert "can't evaluate field Status" in error_of("{{range .Mounts}}{{.Status}}{{end}}").message


def test_an_unknown_function_is_an_error_naming_it() -> None:
    err = error_of("{{foo .Name}}")
    assert 'function "foo" not defined' in err.message
    assert err.hint == template.SYNTAX_HINT


@pytest.mark.parametrize("text, fragment", [
    ("{{", "1:1: unclosed action"),
    ("{{.Names", "unclosed action"),
    ("}}", 'unexpected "}}" outside an action'),
    ("a\n  {{end}}", "2:3: unexpected {{end}}"),
    ("{{else}}", "unexpected {{else}}"),
    ("{{if .Name}}x", "missing {{end}} for {{if}}"),
    ("{{range .Names}}{{else}}{{else}}{{end}}", "found {{else}}"),
    ("{{break}}", "{{break}} outside {{range}}"), ("{{range .Names}}{{end}}{{continue}}", "{{continue}} outside"),
    ('{{"abc}}', "unterminated quoted string"),
    ("{{(.Name}}", "unclosed left paren"),
    ("{{}}", "missing value for command"),
    ("{{.Name @}}", "unexpected '@' in action"),
    ("{{/* never closed }}", "comment"),
    ('{{define "x"}}{{end}}', "{{define}} is not supported"),
    ("{{.Name .Tag}}", "can't give argument to non-function"),
    ("x {{json}} y", "wrong number of args for json: want 1 got 0"),
    ('{{truncate .Name "2"}}', "expected int; got string"),
    ("{{join .Name \",\"}}", "expected []string; got string"),
    ("{{len .Count}}", "error calling len"),
    ('{{eq .Count "3"}}', "incompatible"),
    ('{{lt .Names 1}}', "incompatible types for comparison"),
    ("{{index .Names 5}}", "index out of range: 5"),
    ("{{range .Name}}{{end}}", "range can't iterate over web"),
])
def test_broken_templates_are_one_line_usage_errors(text: str, fragment: str) -> None:
    assert fragment in error_of(text).message


def test_a_syntax_error_is_found_before_any_row_is_rendered() -> None:
    with pytest.raises(UsageError, match="unexpected"):
        render_rows("table {{.ID}}{{end}}", [])


# --- rows, tables, headers ------------------------------------------------------------------------------------

ROWS = [{"ID": "0123456789ab", "Names": "web", "Image": "alpine", "CreatedAt": "now"},
        {"ID": "ba9876543210", "Names": "a-much-longer-name", "Image": "busybox", "CreatedAt": "then"}]


def test_a_plain_template_renders_one_line_per_document_without_a_header() -> None:
    assert render_rows("{{.Names}} {{.Image}}", ROWS) == "web alpine\na-much-longer-name busybox"
    assert render_rows("{{.Names}}", []) == ""


def test_a_table_has_a_header_and_columns_aligned_like_podmans_tabwriter() -> None:
    out = render_rows("table {{.ID}}\t{{.Names}}\t{{.Image}}", ROWS, {"ID": "CONTAINER ID", "Names": "NAMES"})
    assert out == ("CONTAINER ID  NAMES               IMAGE\n"
                   "0123456789ab  web                 alpine\n"
                   "ba9876543210  a-much-longer-name  busybox")


def test_table_columns_are_at_least_twelve_wide_and_the_last_is_not_padded() -> None:
    out = render_rows("table {{.A}}\t{{.B}}\t{{.C}}", [{"A": "x", "B": "y", "C": "z"}])
    assert out == "A" + " " * 11 + "B" + " " * 11 + "C\n" + "x" + " " * 11 + "y" + " " * 11 + "z"


def test_spaces_and_typed_tabs_in_a_table_format_break_columns() -> None:
    spaced = render_rows("table {{.ID}} {{.Names}}", ROWS[:1], {"ID": "CONTAINER ID"})
    typed = render_rows(r"table {{.ID}}\t{{.Names}}", ROWS[:1], {"ID": "CONTAINER ID"})
    assert spaced == typed == "CONTAINER ID  NAMES\n0123456789ab  web"


def test_a_table_without_rows_is_its_header_and_noheading_drops_it() -> None:
    assert render_rows("table {{.ID}}\t{{.Names}}", [], {"ID": "CONTAINER ID"}) == "CONTAINER ID  NAMES"
    assert render_rows("table {{.ID}}\t{{.Names}}", ROWS, heading=False) == \
        "0123456789ab  web\nba9876543210  a-much-longer-name"


def test_table_headers_come_from_the_first_field_of_each_action() -> None:
    doc = {"ID": "1", "Config": {"Env": []}, "Labels": {}, "Mounts": [], "CreatedAt": "x", "RunningFor": "y"}
    out = render_rows('table {{.ID}}\t{{json .Config.Env}}\t{{index .Labels "k"}}\t{{range .Mounts}}{{end}}\t'
                      '{{.CreatedAt}}\t{{.RunningFor}}\t{{"lit"}}', [doc], {"ID": "CONTAINER ID"})
    header, row = out.splitlines()
    assert re.split(r" {2,}", header.rstrip()) == ["CONTAINER ID", "ENV", "LABELS", "MOUNTS", "CREATED AT", "RUNNING FOR"]
    assert row.rstrip() == "1" + " " * 13 + "[]" + " " * 10 + " " * 24 + "x" + " " * 11 + "y" + " " * 12 + "lit"


@pytest.mark.parametrize("field, headers, expected", [
    ("ID", None, "ID"), ("CreatedAt", None, "CREATED AT"), ("ImageID", None, "IMAGE ID"),
    ("RunningFor", None, "RUNNING FOR"), ("HTTPServer", None, "HTTP SERVER"), ("Size2", None, "SIZE 2"),
    ("State.Status", None, "STATUS"), ("State.Status", {"State.Status": "state"}, "STATE"),
    ("ID", {"ID": "CONTAINER ID"}, "CONTAINER ID"),
])
def test_header_text_splits_camel_case_like_podman(field: str, headers: dict[str, str] | None,
                                                   expected: str) -> None:
    assert header_text(field, headers) == expected


def test_tabwriter_column_blocks_end_at_a_line_without_that_column() -> None:
    text = "aaaaaaaaaaaaaaaa\tb\nno-tab-line\nc\td\ne\t"
    assert tabwrite(text) == ("aaaaaaaaaaaaaaaa  b\n"
                                 "no-tab-line\n"
                                 "c" + " " * 11 + "d\n"
                                 "e" + " " * 11)


@pytest.mark.parametrize("fmt, kind", [
    (None, "default"), ("", "default"), ("table", "default"), ("json", "json"), ("{{json}}", "json"),
    (" {{ json. }} ", "json"), ("{{json .}}", "template"), ("table {{.ID}}", "table"), ("{{.ID}}", "template"),
])
def test_format_kind_tells_default_json_table_and_template_apart(fmt: str | None, kind: str) -> None:
    assert format_kind(fmt) == kind


PS_DEFAULT = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.CreatedHuman}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"


@pytest.mark.parametrize("heading", [True, False])
@pytest.mark.parametrize("count", [0, 1, 3])
def test_a_commands_own_table_prints_what_the_template_engine_prints(capsys: pytest.CaptureFixture[str],
                                                                    heading: bool, count: int) -> None:
    """``ps`` and ``images`` lay out their default table without the template engine (its import
    is most of their start-up): the text must be the engine's, to the space."""
    rows = [dict(ID=f"{i:012x}", Image="reg/x:1" * (i + 1), Command="sh -c a\tb" if i else "true",
                 CreatedHuman=f"{i} minutes ago", Status="Up", Ports="" if i else "0.0.0.0:80->80/tcp",
                 Names=f"n{i}", Size=i) for i in range(count)]
    headers = {"ID": "CONTAINER ID", "CreatedHuman": "CREATED"}
    expected = render_rows(PS_DEFAULT, rows, headers, heading=heading)
    print_rows(None, [], rows, PS_DEFAULT, headers, heading=heading)
    assert capsys.readouterr().out == (expected + "\n" if expected else "")
    # A cell that is not text, or a camel-case header word: the engine does it.
    print_rows(None, [], rows, PS_DEFAULT + "\t{{.Size}}\t{{.CreatedHuman}}", {}, heading=heading)
    assert capsys.readouterr().out.rstrip("\n") == render_rows(PS_DEFAULT + "\t{{.Size}}\t{{.CreatedHuman}}", rows,
                                                                 {}, heading=heading)
