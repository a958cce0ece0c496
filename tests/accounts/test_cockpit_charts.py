"""csplatform.charts: inline SVG that a screen reader can name, with the numbers as a table, text escaped."""

import re

from csplatform import charts


def svg_of(html: str) -> str:
    return re.search(r"<svg.*?</svg>", html, re.S).group(0)


def table_of(html: str) -> list[list[str]]:
    body = re.search(r"<details.*?</details>", html, re.S).group(0)
    return [re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row) for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


def test_it_draws_a_line_chart_with_a_name_and_a_data_table():
    html = charts.line_chart([charts.Series("Health score", [72, 70, None, 64])], labels=["1 Mar", "8 Mar", "15 Mar", "22 Mar"],
                             title="Health score, last 90 days", y_min=0, y_max=100)
    svg = svg_of(html)
    assert 'role="img"' in svg
    assert 'aria-label="Health score, last 90 days. Health score: latest 64"' in svg
    assert "<title>Health score, last 90 days. Health score: latest 64</title>" in svg
    assert table_of(html) == [["Date", "Health score"], ["1 Mar", "72"], ["8 Mar", "70"], ["15 Mar", "-"], ["22 Mar", "64"]]


def test_it_breaks_the_line_where_data_is_missing():
    path = re.search(r'<path d="([^"]+)" fill="none"', charts.line_chart(
        [charts.Series("Logins", [1, 2, None, 4, 5])], labels=list("abcde"), title="Logins")).group(1)
    assert path.count("M") == 2 and path.count("L") == 2  # two segments: a-b and d-e


def test_it_escapes_every_text_it_is_given():
    html = charts.bar_chart([charts.Bar("<b>Healthy</b>", 3)], title='Bands "<script>alert(1)</script>"')
    assert "<script>" not in html and "<b>" not in html
    assert "&lt;script&gt;" in html and "&lt;b&gt;Healthy&lt;/b&gt;" in html


def test_it_draws_bars_with_their_values():
    html = charts.bar_chart([charts.Bar("Healthy", 12, "#2e7d32"), charts.Bar("Critical", 3, "#c62828")],
                            title="Accounts by risk band", x_name="Risk band", y_name="Accounts")
    assert 'aria-label="Accounts by risk band. Healthy 12, Critical 3"' in html
    assert html.count("<rect") == 2
    assert table_of(html) == [["Risk band", "Accounts"], ["Healthy", "12"], ["Critical", "3"]]


def test_a_gauge_names_its_value_and_band_and_survives_no_value():
    bands = [(40, "#c62828"), (60, "#e65100"), (80, "#b58900"), (100, "#2e7d32")]
    html = charts.gauge(35, title="Health score", bands=bands, label="Critical")
    assert 'aria-label="Health score. 35 out of 100, Critical"' in html
    assert 'stroke="#c62828" stroke-width="10"/>' in html  # the value's arc takes its band's colour
    empty = charts.gauge(None, title="Health score", bands=bands, label="Not scored")
    assert 'aria-label="Health score. - out of 100, Not scored"' in empty


def test_a_sparkline_says_where_it_went():
    html = charts.sparkline([3, 4, None, 8], title="Logins")
    assert 'aria-label="Logins. from 3 to 8"' in html and "<details" in html


def test_nice_ticks_are_round_numbers():
    assert charts.nice_ticks(0, 100) == [0, 25, 50, 75, 100]
    assert charts.nice_ticks(0, 7) == [0, 2, 4, 6, 8]
