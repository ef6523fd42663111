// Export of a span as a pipeline job (AVA's batch topology with a video source and sink), and
// the jobs with their progress and downloads.

import { $, api, iso, mediaUrl, mediaUrlFresh } from './api.js';
import { state } from './state.js';

const EXPORT_TOPOLOGY = 'openva-ui-export';

async function ensureExportTopology() {
  const body = {
    kind: 'Batch',
    properties: {
      description: 'Created by the web UI: copies a span of a video into a file video',
      parameters: [{ name: 'source', type: 'String' }, { name: 'ranges', type: 'String' }, { name: 'output', type: 'String' }],
      sources: [{ '@type': '#Microsoft.VideoAnalyzer.VideoSource', name: 'videoSource', videoName: '${source}',
        timeSequences: { '@type': '#Microsoft.VideoAnalyzer.VideoSequenceAbsoluteTimeMarkers', ranges: '${ranges}' } }],
      sinks: [{ '@type': '#Microsoft.VideoAnalyzer.VideoSink', name: 'videoSink', videoName: '${output}',
        inputs: [{ nodeName: 'videoSource' }] }],
    },
  };
  await api(`/api/pipelineTopologies/${EXPORT_TOPOLOGY}`, { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
}

$('export').onclick = async () => {
  if (!state.span) return;
  try {
    await ensureExportTopology();
    const stamp = new Date().toISOString().replace(/[-:.TZ]/g, '').slice(0, 14);
    const job = `export-${stamp}`;
    const output = `${state.video}-${stamp}`.slice(0, 32).replace(/-+$/, '');
    const ranges = JSON.stringify([[iso(state.span[0]), iso(state.span[1])]]);
    await api(`/api/pipelineJobs/${job}`, {
      method: 'PUT', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ properties: { topologyName: EXPORT_TOPOLOGY, parameters: [
        { name: 'source', value: state.video }, { name: 'ranges', value: ranges }, { name: 'output', value: output }] } }),
    });
    refreshJobs();
  } catch (e) {
    alert(`export failed: ${e.message}`);
  }
};

// Progress has no event: while a job runs (and only then) its list is refreshed every 2 s.
let jobsTimer = null;

export async function refreshJobs() {
  const jobs = (await api('/api/pipelineJobs')).value || [];
  if (!jobsTimer && jobs.some((j) => j.properties.state === 'Processing')) {
    jobsTimer = setTimeout(() => {
      jobsTimer = null;
      refreshJobs().catch((e) => console.warn(e.message));
    }, 2000);
  }
  // Built aside and swapped in whole: a refresh that overlaps another never mixes their lists.
  const ul = document.createElement('ul');
  for (const j of jobs) {
    const p = j.properties;
    const li = document.createElement('li');
    li.className = `job ${p.state}`;
    li.dataset.state = p.state;
    li.textContent = `${j.name}: ${p.state} ${p.progressPercent}% `;
    if (p.state === 'Completed') {
      const a = document.createElement('a');
      const name = p.outputVideoName;
      const plain = `/api/videos/${name}/content.mp4`;
      a.href = await mediaUrl(name, plain);
      // A link older than its token gets a fresh one when clicked.
      a.addEventListener('click', (ev) => {
        if (mediaUrlFresh(name)) return;
        ev.preventDefault();
        mediaUrl(name, plain).then((u) => { a.href = u; a.click(); }).catch((e) => console.warn(e.message));
      });
      a.textContent = `${p.outputVideoName}.mp4`;
      a.className = 'download';
      li.appendChild(a);
    } else if (p.error) {
      li.append(` (${p.error.message})`);
    }
    ul.appendChild(li);
  }
  $('jobs').replaceChildren(...ul.children);
}
