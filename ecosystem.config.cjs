// pm2 process file: npx pm2 start ecosystem.config.cjs
// Both apps run from the TypeScript sources through tsx (a runtime dependency), so there is no
// build step to forget after an update: `git pull && npx pm2 reload ecosystem.config.cjs`.
// Both read .env from this folder (cwd); real environment variables win.
// PM2_LOG_DIR moves pm2's own stdout/stderr files (default logs/).
const logDir = process.env.PM2_LOG_DIR || 'logs';

module.exports = {
  apps: [
    {
      name: 'keywarden-server',
      script: 'server/index.ts',
      interpreter: 'node',
      node_args: '--import tsx',
      cwd: __dirname,
      exec_mode: 'fork',
      instances: 1,
      // The server sends process.send('ready') once it listens; pm2 waits for it on start and reload.
      wait_ready: true,
      listen_timeout: 15000,
      // SIGINT, then this long for the final state save before pm2 kills the process.
      kill_timeout: 10000,
      out_file: `${logDir}/keywarden-server.out.log`,
      error_file: `${logDir}/keywarden-server.err.log`,
      merge_logs: true,
      time: false,
      autorestart: true,
      max_restarts: 20,
      restart_delay: 1000,
    },
    {
      name: 'keywarden-bot',
      script: 'bot/index.ts',
      interpreter: 'node',
      node_args: '--import tsx',
      cwd: __dirname,
      exec_mode: 'fork',
      instances: 1,
      wait_ready: true,
      listen_timeout: 30000,
      kill_timeout: 5000,
      out_file: `${logDir}/keywarden-bot.out.log`,
      error_file: `${logDir}/keywarden-bot.err.log`,
      merge_logs: true,
      autorestart: true,
      max_restarts: 20,
      // A bad token exits 1 at once; back off instead of hammering Discord's login.
      exp_backoff_restart_delay: 2000,
    },
  ],
};
