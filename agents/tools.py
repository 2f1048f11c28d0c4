"""The interface a tool offers to the agent's tool loop.

`agents` only knows this protocol; concrete tools (for example the sandboxed
`python` tool in `gates`) are handed to `run_agent` by the caller.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Tool(Protocol):
    """A function the model may call. `parameters` is a JSON schema object."""

    name: str
    description: str
    parameters: dict[str, Any]

    async def call(self, arguments: dict[str, Any]) -> str:
        """Run the tool and return the text the model sees as the tool result."""
        ...


def tool_schema(tool: Tool) -> dict[str, Any]:
    """The OpenAI function-calling declaration of a tool."""
    return {
        "type": "function",
        "function": {"name": tool.name, "description": tool.description, "parameters": tool.parameters},
    }
