// The pipelines page: topologies, live pipelines (activate, deactivate).

import { $, api } from './api.js';

export async function loadPipelines() {
  const topos = (await api('/api/pipelineTopologies')).value || [];
  $('topologies').innerHTML = '';
  for (const t of topos) {
    const li = document.createElement('li');
    li.textContent = `${t.name} (${t.kind || 'Live'})`;
    $('topologies').appendChild(li);
  }
  const pipes = (await api('/api/livePipelines')).value || [];
  $('pipelines').innerHTML = '';
  for (const p of pipes) {
    const li = document.createElement('li');
    const active = p.properties.state === 'active';
    li.textContent = `${p.name} — ${p.properties.topologyName} — ${p.properties.state} `;
    const b = document.createElement('button');
    b.textContent = active ? 'Deactivate' : 'Activate';
    b.onclick = async () => {
      try {
        await api(`/api/livePipelines/${p.name}/${active ? 'deactivate' : 'activate'}`, { method: 'POST' });
      } catch (e) {
        alert(e.message);
      }
      loadPipelines();
    };
    li.appendChild(b);
    $('pipelines').appendChild(li);
  }
}
