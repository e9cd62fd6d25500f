"""Channels: how a message leaves chargewire as a webhook, and the signing, guard and protocol every channel shares.

The Kafka channel lives with the rest of the Kafka path, in `chargewire.kafka`. Each channel describes itself
to the registry (`chargewire.channels.registry`; docs/channels.md). Import from the modules themselves: this
package re-exports nothing, so that a module needing only the address guard or the registry does not load the
webhook client and its HTTP stack.
"""
