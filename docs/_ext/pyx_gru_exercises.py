"""Folded blocks for the theory pages' exercises.

``.. solution::`` wraps its content in an HTML ``<details>`` element, closed
until the reader opens it, with "Solution" as the line to click; an argument
replaces that line (``.. solution:: The test``). Other builders show the
content as it is. No script: the browser folds it
(``_static/pyx_gru_exercises.css`` only draws its margin).
"""
from docutils import nodes
from docutils.parsers.rst import Directive


class folded(nodes.General, nodes.Element):
    """A block shown as ``<details>``; ``node["summary"]`` is the line to click."""


def _visit_html(self, node):
    self.body.append(self.starttag(node, "details", CLASS="solution"))
    self.body.append(f'<summary>{self.encode(node["summary"])}</summary>\n')


def _depart_html(self, node):
    self.body.append("</details>\n")


def _skip(self, node):
    pass


class Solution(Directive):
    optional_arguments = 1
    final_argument_whitespace = True
    has_content = True

    def run(self):
        node = folded(summary=self.arguments[0] if self.arguments else "Solution")
        self.state.nested_parse(self.content, self.content_offset, node)
        return [node]


def setup(app):
    plain = (_skip, _skip)
    app.add_node(folded, html=(_visit_html, _depart_html), latex=plain, text=plain,
                 man=plain, texinfo=plain)
    app.add_directive("solution", Solution)
    app.add_css_file("pyx_gru_exercises.css")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
