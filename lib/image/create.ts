import type { LabConfig } from '../config/schema.js';
import { DebootstrapImage } from './debootstrap.js';
import type { ImageDriver } from './image.js';
import { type HostDistribution, readHostDistribution } from './mirror.js';
import { PacstrapImage } from './pacstrap.js';
import { TarballImage } from './tarball.js';

export function createImage(config: LabConfig, host: HostDistribution = readHostDistribution()): ImageDriver {
  switch (config.image.source) {
    case 'tarball':
      return new TarballImage(config);
    case 'pacstrap':
      return new PacstrapImage(config);
    case 'debootstrap':
      return new DebootstrapImage(config, host);
  }
}
