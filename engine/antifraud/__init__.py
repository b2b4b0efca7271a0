"""Anti-fraud in front of every viewer action: rate limits, bans and mutes, the keyword filter and
bot rules (docs/antifraud.md). Pure: limits, keywords, bots, behaviour, clientip, state; I/O:
guard (what the gateway and handlers call), moderation (sanctions, lists, signals), limiter."""
