"""Drives Keywarden's proxy with the official Kindwise Python SDK (vendored in ../shared/vendor).

usage: kindwise_flow.py SDK_DIR HOST TOKEN full ROUNDS      -> identify, retrieve, feedback, ask,
                                                               get conversation, delete conversation,
                                                               delete, ROUNDS times
       kindwise_flow.py SDK_DIR HOST TOKEN create           -> identify; prints its access_token
       kindwise_flow.py SDK_DIR HOST TOKEN follow TOKEN     -> the follow-ups on an identification

Prints one JSON line per step done; any SDK error ends it with a non-zero exit and the error.
"""
import asyncio
import json
import sys
import types

sdk_dir, host, token, mode, *rest = sys.argv[1:]
# The package's __init__ imports sync modules its build generates; load the async API without it.
pkg = types.ModuleType('kindwise')
pkg.__path__ = [sdk_dir + '/kindwise']
sys.modules['kindwise'] = pkg
from kindwise.async_api.plant import AsyncPlantApi  # noqa: E402
from PIL import Image  # noqa: E402


def step(name, **data):
    print(json.dumps({'step': name, **data}), flush=True)


async def follow(api, access_token):
    got = await api.get_identification(access_token, as_dict=True)
    assert got['access_token'] == access_token, got
    step('retrieve', token=access_token)
    assert await api.feedback(access_token, comment='looks right', rating=5)
    step('feedback')
    conversation = await api.ask_question(access_token, 'Is it edible?')
    assert conversation.messages[-1].content, conversation
    step('ask')
    conversation = await api.get_conversation(access_token)
    assert len(conversation.messages) == 2, conversation
    step('conversation')
    assert await api.delete_conversation(access_token)
    step('delete_conversation')
    assert await api.delete_identification(access_token)
    step('delete')


async def main():
    api = AsyncPlantApi(api_key=token)
    api.host = host
    image = Image.new('RGB', (16, 16), (30, 140, 60))
    if mode == 'create':
        made = await api.identify(image, as_dict=True)
        step('identify', token=made['access_token'])
    elif mode == 'follow':
        await follow(api, rest[0])
    else:
        for n in range(int(rest[0])):
            made = await api.identify(image, custom_id=n + 1, as_dict=True)
            step('identify', token=made['access_token'], round=n)
            await follow(api, made['access_token'])


try:
    asyncio.run(main())
except Exception as err:  # the test reads what went wrong
    print(json.dumps({'error': f'{type(err).__name__}: {err}'}), flush=True)
    sys.exit(1)
