//! openva's end-to-end tests: one test binary of modules, one per area (as ripgrep does), so
//! a build links one executable instead of one per file. nextest still runs each test in a
//! process of its own. Filter by module: `./tests/run -E 'test(/^attacks::/)'`.

mod api_audio;
mod api_file_videos;
mod api_hls;
mod api_input;
mod api_jobs;
mod api_pixels;
mod api_plugins;
mod api_restart;
mod api_tutorial;
mod attacks;
mod bad_input;
mod camera_stops;
mod camera_zoo;
mod clock_step;
mod crash;
mod disk_full;
mod durability;
mod evr;
mod export_accuracy;
mod extensions;
mod faults;
mod hostile_camera;
mod hot_reload;
mod mqtt;
mod outage;
mod plugin_cli;
mod plugins;
mod remote;
mod rtsp_servers;
mod variants;
mod video_settings;
mod web_av;
mod web_ui;
