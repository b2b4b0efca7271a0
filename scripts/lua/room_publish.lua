-- room_publish: publish one room message (chat, notices) with the room's next seq.
-- KEYS[1] room meta hash (epoch, seq)    ARGV[1] bus channel of the room
-- KEYS[2] room history stream            ARGV[2] message (msgpack)
--                                        ARGV[3] history cap (approximate MAXLEN)
--                                        ARGV[4] history ttl (ms without publications)
--                                        ARGV[5] epoch to use if the room has none
-- Returns {epoch, seq}.
-- Invariant: see lib/room_publish.lua (gap-free seqs per epoch, history in seq order).
--!include lib/room_publish.lua
return room_publish(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
