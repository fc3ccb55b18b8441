"""Talk to ``qa mcp`` as an AI assistant would: start it over stdio with the MCP Python SDK's
client, list its tools and call them.

    pip install 'qa-cite[mcp]'
    python examples/mcp_client.py [INDEX_DIR] [QUESTION]

Without INDEX_DIR the server uses the default index (the sample articles, built on first use).
To give an assistant these tools, register the same command in its MCP configuration (see the
README's "MCP" section).
"""

from __future__ import annotations

import asyncio
import json
import sys

from mcp import Client, StdioServerParameters


async def main(index: str | None, question: str) -> None:
    args = ["-m", "qa.cli", "mcp"] + (["--index", index] if index else [])
    server = StdioServerParameters(command=sys.executable, args=args)
    async with Client(server) as client:
        tools = await client.list_tools()
        print("tools:", ", ".join(t.name for t in tools.tools))

        result = await client.call_tool("ask", {"question": question, "k": 3})
        answer = result.structured_content
        assert answer is not None, result
        print(f"\nask: {answer['answer']}")
        for p in answer["passages"]:
            print(f"  [{p['rank']}] {p['doc_id']} [{p['start']}:{p['end']}] score {p['score']}")

        result = await client.call_tool("search", {"question": question, "k": 1})
        print("\nsearch:", json.dumps(result.structured_content, ensure_ascii=False)[:300])

        bad = await client.call_tool("ask", {"question": question, "k": 0})
        print("\nask with k=0 ->", "error:" if bad.is_error else "ok:",
              " ".join(c.text for c in bad.content if hasattr(c, "text"))[:200])


if __name__ == "__main__":
    argv = sys.argv[1:]
    asyncio.run(main(argv[0] if argv else None,
                     argv[1] if len(argv) > 1 else "What did Ukraine offer in Istanbul?"))
