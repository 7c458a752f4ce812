// pm2 process file. Build first (`npm run build`), then: npx pm2 start ecosystem.config.cjs
// Both apps read .env from this folder (cwd); real environment variables win.
module.exports = {
  apps: [
    {
      name: 'keywarden-server',
      script: 'dist/server/index.js',
      cwd: __dirname,
      exec_mode: 'fork',
      instances: 1,
      // The server sends process.send('ready') once it listens; pm2 waits for it on start and reload.
      wait_ready: true,
      listen_timeout: 15000,
      // SIGINT, then this long for the final state save before pm2 kills the process.
      kill_timeout: 10000,
      out_file: 'logs/keywarden-server.out.log',
      error_file: 'logs/keywarden-server.err.log',
      merge_logs: true,
      time: false,
      autorestart: true,
      max_restarts: 20,
      restart_delay: 1000,
    },
    {
      name: 'keywarden-bot',
      script: 'dist/bot/index.js',
      cwd: __dirname,
      exec_mode: 'fork',
      instances: 1,
      wait_ready: true,
      listen_timeout: 30000,
      kill_timeout: 5000,
      out_file: 'logs/keywarden-bot.out.log',
      error_file: 'logs/keywarden-bot.err.log',
      merge_logs: true,
      autorestart: true,
      max_restarts: 20,
      // A bad token exits 1 at once; back off instead of hammering Discord's login.
      exp_backoff_restart_delay: 2000,
    },
  ],
};
