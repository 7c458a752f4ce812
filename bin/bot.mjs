// pm2's entry for the Discord bot (see server.mjs for why a plain module).
import '../bot/index.ts';
