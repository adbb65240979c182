"""Adapters that let agent SDKs keep their state in a prism store.

Each SDK has a module of its own, behind an extra of the same name, and its SDK is
imported only when that module is: ``import prism_storage`` never imports one.

* :mod:`prism_storage.integrations.langchain` (``prism-storage[langchain]``): a LangChain
  ``BaseStore`` and ``BaseChatMessageHistory``;
* :mod:`prism_storage.integrations.langgraph` (``prism-storage[langgraph]``): a LangGraph
  checkpointer and ``BaseStore``;
* :mod:`prism_storage.integrations.llama_index` (``prism-storage[llama-index]``): a
  LlamaIndex ``BaseKVStore`` and ``BaseChatStore``;
* :mod:`prism_storage.integrations.openai_agents` (``prism-storage[openai-agents]``): an
  OpenAI Agents SDK ``Session``.
"""
