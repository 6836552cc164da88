// The node project's files are one story told in order (boot guard, clients, rollout, reboot, uninstall):
// they run by file name. Every other project keeps vitest's own order.
import { BaseSequencer, type TestSpecification } from 'vitest/node';

export class NodeStorySequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const node = files.filter((f) => f.project.name === 'node');
    const rest = await super.sort(files.filter((f) => f.project.name !== 'node'));
    return [...rest, ...node.sort((a, b) => a.moduleId.localeCompare(b.moduleId))];
  }
}
